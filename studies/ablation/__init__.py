"""The recipe's levers, measured on validation windows (docs/ablation.md):
`python -m studies.ablation --help`."""
