"""Read models built from the notification log (scoreboard, matrix, supervision, audit, trace)."""
