"""The Textual face: the app shell, its screens, widgets, styles and messages. It renders what the middle floor
(rnn_playground.tui.viewmodel) hands it."""
