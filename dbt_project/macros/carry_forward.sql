{#- Each of `columns` with gaps filled by the last non-null value of its series (`partition_by`,
    ordered by hour): the select list of the hourly spines, one column per line with a comma. -#}
{% macro carry_forward(columns, partition_by) -%}
    {%- for column in columns %}
    last_value({{ column }} ignore nulls) over (
        partition by {{ partition_by }} order by hour rows between unbounded preceding and current row
    ) as {{ column }},
    {%- endfor %}
{%- endmacro %}
