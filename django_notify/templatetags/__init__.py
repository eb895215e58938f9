"""Template tags of django_notify: ``{% load notify %}``."""
