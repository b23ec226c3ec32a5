"""The startup module of uedsteer's bluesky-queueserver profile.

``start-re-manager --startup-module uedsteer.plans.qserver_profile.startup`` (and
``qserver-list-plans-devices --startup-module …``) import it; its globals are the RE Worker's
namespace, built by :func:`uedsteer.plans.qserver_profile.namespace.profile_namespace` from the
environment variables listed there.
"""

from uedsteer.plans.qserver_profile.namespace import profile_namespace

globals().update(profile_namespace())
del profile_namespace
