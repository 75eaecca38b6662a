"""The training recipe's ablation (docs/ablation.md): `python -m studies.ablation --help`."""
