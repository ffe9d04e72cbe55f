"""The API's service layer: small keyword-only functions that own queries and commits."""
