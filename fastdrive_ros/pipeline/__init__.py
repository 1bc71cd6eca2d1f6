"""pipeline room (see DESIGN.md section 3)."""
