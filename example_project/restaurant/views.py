from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    """A page of links to what the demo offers."""
    return render(request, "restaurant/home.html")
