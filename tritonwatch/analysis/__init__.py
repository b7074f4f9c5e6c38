"""Pure analysis: statistics, change points, detection, the release gate."""
