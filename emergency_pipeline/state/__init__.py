"""Safety state that outlives a run: the account lease and the job and address ledgers."""
