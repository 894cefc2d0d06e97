{% for statement in params.ddl %}{{ statement | ddl }};
{% endfor %}
