"""Split fine-tuning's resource manager (docs/sft.md sections 3, 5, 6): cuts, compression and
spectrum from the system model. No torch."""
