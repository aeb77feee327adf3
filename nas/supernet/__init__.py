"""nas.supernet (filled by later issues)."""
