"""checkov checks of this project (loaded by scripts/validate-security.sh)."""
