"""A tutorial-grade Channels chat, the baseline the real server is measured against."""
