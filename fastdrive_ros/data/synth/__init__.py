"""data/synth room (see DESIGN.md section 3)."""
