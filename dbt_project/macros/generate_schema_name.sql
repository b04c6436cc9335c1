{#- Use the layer name (staging, intermediate, marts) as the schema, without a target prefix,
    so users query `marts.fct_...` whatever the profile's default schema is. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
