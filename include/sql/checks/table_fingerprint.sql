{# A table's data in one row, computed on the server (one scan, one row back): the row count, the sum of
   every exact-numeric column, and per integer or character column a key-weighted sum that sees values
   moved between rows (docs/altibase-rules.md, "Comparing the data of the two servers"). Every term is
   an integer below 4093 (a residue of the value — of its SHA-256 for text — times the key's weight,
   reduced again), so the sums stay exact in any numeric type and any order. #}
{%- macro residue(column, text) -%}
{%- if text -%}MOD(HEX_TO_NUM(SUBSTR(DIGEST({{ column | ident }}, 'SHA-256'), 1, 7)), 4093){%- else -%}MOD({{ column | ident }}, 4093){%- endif -%}
{%- endmacro -%}
{%- set weight -%}({% for key in params.key_columns %}{% if not loop.first %} + {% endif %}{{ loop.index }} * {{ residue(key.column, key.text) }}{% endfor %}){%- endset -%}
SELECT COUNT(*) AS ROW_COUNT{% for column in params.columns %}, SUM({{ column | ident }}) AS {{ column | ident }}{% endfor %}{% for column in params.weighed %}, SUM(MOD({{ residue(column.column, column.text) }} * {{ weight }}, 4093)) AS {{ column.alias | ident }}{% endfor %} FROM {{ params.table | table }}
