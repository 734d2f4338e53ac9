"""Setuptools shim: all metadata lives in setup.cfg."""

from __future__ import annotations

from setuptools import setup

setup()
