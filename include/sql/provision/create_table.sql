{#- P6, every node: a table to replicate, created before the replication object (seed order).
    params.table is a TableSpec (altibase_ops.provision.tables): names pass the ident filter,
    column types were checked against the supported types when the spec was built. Unqualified,
    as in the seed: the runner connects as SYS, the only user allowed replication DDL. -#}
CREATE TABLE {{ params.table.name | ident }} (
{%- for column in params.table.columns -%}
{{ column.name | ident }} {{ column.type }}
{%- if params.table.primary_key | length == 1 and column.name == params.table.primary_key[0] %} PRIMARY KEY
{%- elif not column.nullable %} NOT NULL
{%- endif %}{{ ", " if not loop.last }}
{%- endfor %}
{%- if params.table.primary_key | length > 1 %}, PRIMARY KEY (
{%- for key in params.table.primary_key %}{{ key | ident }}{{ ", " if not loop.last }}{% endfor %})
{%- endif -%}
);
