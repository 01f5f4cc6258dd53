"""What every layer shares: the one error type, typed configs, atomic writes, provenance and progress; imports nothing else from tfnmt."""
