"""closedloop: an event-sourced record of the six-confirmation closed loop."""

__version__ = "0.1.0"
