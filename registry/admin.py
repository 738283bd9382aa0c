from django.contrib import admin
from django.http import HttpRequest

from registry.models import AuditEvent, Entry


class AuditEventInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AuditEvent
    extra = 0
    fields = ("created_at", "action", "from_state", "to_state", "actor", "note")
    readonly_fields = fields
    can_delete = False


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read only: an entry changes through `manage.py registry` (sign, import, promote,
    rollback), which checks signatures and writes the audit trail; a form would not."""

    list_display = ("kind", "name", "version", "state", "key_id", "promoted_at", "created_by", "created_at")
    list_filter = ("kind", "state", "key_id")
    search_fields = ("name",)
    readonly_fields = [field.name for field in Entry._meta.fields]
    inlines = [AuditEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
