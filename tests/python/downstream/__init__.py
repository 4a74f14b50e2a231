"""A downstream Django + DRF + simplejwt service that trusts tokensmith's access tokens without a
user table (the README's "stateless downstream" recipe). tests/api/downstream.rs runs it."""
