"""Code generation: fusion groups -> kernel descriptions -> source text from Jinja templates."""
