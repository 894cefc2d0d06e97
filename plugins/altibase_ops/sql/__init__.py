"""SQL building blocks: identifiers, the templates under include/sql, the one step runner with its
"already done" table (``steps``), and iSQL's command line and output (``isql``)."""
