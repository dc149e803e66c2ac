"""Structured Text compiler: grammar, parser, AST, type checker and Python code generation."""
