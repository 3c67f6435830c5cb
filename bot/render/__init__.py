"""Rendering: `Post` → `Rendered` (Telegram HTML, the splitter, templates, MJML)."""
