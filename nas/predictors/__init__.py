"""nas.predictors (filled by later issues)."""
