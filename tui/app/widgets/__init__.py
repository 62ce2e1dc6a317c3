"""Widgets of the app; they render snapshots from core and hold no training logic."""
