"""Results you can publish: a sweep aggregated by configuration, paired comparisons."""
