{% for table in params.tables %}ALTER REPLICATION {{ params.replication_name | ident }} ADD TABLE FROM {{ table | table }} TO {{ table | table }};
{% endfor %}
