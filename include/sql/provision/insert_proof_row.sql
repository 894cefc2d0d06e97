{#- P7 on the row's origin node. params.row holds literals made by altibase_ops.provision.sql from
    an integer key: digits, quoted digits or NULL. -#}
INSERT INTO {{ params.table | ident }} VALUES ({{ params.row | join(", ") }});
