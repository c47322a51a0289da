"""Task sources beyond local folders: Harbor registry datasets, SWE-style data sets, job exports."""
