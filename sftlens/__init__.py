"""sftlens: what did supervised fine-tuning teach — reasoning, or the look of answers?"""

__version__ = "0.1.0"
