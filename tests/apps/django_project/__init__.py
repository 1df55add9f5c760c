"""A minimal single-settings Django project for tests/frameworks.rs.

Served as ``django_project.wsgi:application`` (from ``tests/apps``) with
``--virtualenv target/test-venv``. No database and no apps that need one.
"""
