"""The front ends: the Textual app and the headless command line. Only these import Textual or Rich."""
