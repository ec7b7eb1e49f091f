"""Insurance claims: filed with their evidence bundle, decided and paid by operators."""
