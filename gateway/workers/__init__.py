"""Background work inside the gateway process: delivery (and later health, expiry)."""
