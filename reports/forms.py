from django import forms

from .models import Membership, Organization


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)]


class UploadForm(forms.Form):
    """Report files (xml, gz, zip, eml) uploaded into one of the user's organizations."""

    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), empty_label=None)
    files = MultipleFileField(help_text="XML, gzip, zip or .eml files; several at once")

    def __init__(self, *args, user, max_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self.fields["organization"].queryset = Organization.objects.for_user(user, Membership.MANAGERS).order_by("name")

    def clean_files(self):
        files = self.cleaned_data["files"]
        for upload in files:
            if upload.size > self.max_bytes:
                raise forms.ValidationError(
                    f"{upload.name} is {upload.size} bytes, more than the {self.max_bytes} byte cap"
                )
        return files
