"""drivetrain: incremental, windowed data pipelines."""
