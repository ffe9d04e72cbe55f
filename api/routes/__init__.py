"""One router per resource; handlers stay thin and call api.services."""
