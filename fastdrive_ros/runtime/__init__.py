"""runtime room (see DESIGN.md section 3)."""
