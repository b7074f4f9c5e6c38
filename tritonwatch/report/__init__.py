"""Renderers only: terminal tables, Markdown, HTML and chat payloads; they never compute."""
