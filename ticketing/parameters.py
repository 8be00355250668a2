"""The checks every call's parameters pass, on the API and the lean path alike: no unknown names, a session id
of the shape API.md gives, and one way to check a request against a serializer."""

from rest_framework import serializers

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class StrictParameters(serializers.Serializer):
    """Query parameters that refuse unknown names, so a misspelt parameter is a 400, not silently ignored."""

    allowed_extra = {"api_dev_key"}

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields) - self.allowed_extra)
        if unknown:
            raise serializers.ValidationError({name: ["This is not a parameter of this call."] for name in unknown})
        return attrs


def session_id_field(**kwargs):
    return serializers.RegexField(
        SESSION_ID_PATTERN,
        max_length=128,
        error_messages={"invalid": "1-128 characters of A-Z, a-z, 0-9, _ and -."},
        help_text="The end user's session, chosen by the client.",
        **kwargs,
    )


class SessionParameters(StrictParameters):
    session_id = session_id_field()


def checked(serializer_class, data):
    """The request's parameters or body checked by `serializer_class`, or a 400 naming each bad one."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
