"""Power sources: NVML, RAPL, a labelled estimate, and the choice among them."""
