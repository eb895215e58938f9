from __future__ import annotations

from django.contrib import admin

from restaurant.models import InventoryItem, Order


@admin.register(InventoryItem)
class InventoryItemAdmin(admin.ModelAdmin):
    list_display = ["name", "quantity", "reorder_level", "is_low", "expires_on"]
    search_fields = ["name"]

    @admin.display(boolean=True, description="Low stock")
    def is_low(self, obj: InventoryItem) -> bool:
        return obj.is_low


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "total", "status"]
    list_filter = ["status"]
    search_fields = ["number"]
