"""Prompt moderation and Llama 3.1 prompt expansion."""
