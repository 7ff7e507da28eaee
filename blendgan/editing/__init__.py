"""Face edits before stylization: directions in W found in the checkpoint itself (`sefa`, `labels` +
`boundaries`), stored with their base's fingerprint (`directions_file`) and applied to face codes (`apply`)."""
