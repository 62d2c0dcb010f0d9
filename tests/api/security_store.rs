//! The third security review's findings about files on disk, through a real server: a
//! removed tenant's kept keys never serve a new tenant of its name, and a tracked file
//! named like keyward's temporary files is never deleted.
