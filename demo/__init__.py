"""`make demo`: the whole product on one machine, with emulated Aidboxes (see README.md)."""
