"""The app's screens: one per mode (Train, Sample, Gates, Series, Runs), plus help and confirmations."""
