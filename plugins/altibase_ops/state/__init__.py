"""Reading a server's state: the catalog (``catalog``), everything a job needs on one SYSDBA session
(``server``), and the three checks the sensors and triggers poll (``checks``)."""
