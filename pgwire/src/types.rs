//! LSN, XID and OID newtypes.
