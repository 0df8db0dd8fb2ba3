"""Units of work, their done/failed markers, and (later) job files and Slurm scripts."""
