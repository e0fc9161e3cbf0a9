/*
 * The API client form: show the rows that apply to the selected token endpoint auth method,
 * hide the others (the public keys of private_key_jwt on a secret client, say).
 *
 * Which rows apply to which method is AUTH_METHOD_FIELDS in oauth_cc/admin.py, put into the page
 * as JSON (#oauth-cc-auth-method-fields). A row with an error is always shown. Nothing here is a
 * check: the server validates every posted value, hidden or not.
 */
'use strict';
(function() {
    function init() {
        const config = document.getElementById('oauth-cc-auth-method-fields');
        if (!config) {
            return;
        }
        const settings = JSON.parse(config.textContent);
        const select = document.getElementById('id_token_endpoint_auth_method');
        const dependent = new Set(Object.values(settings.fields).flat());

        function apply() {
            // A user who may only view the client gets no select: use the saved method.
            const method = select ? select.value : settings.method;
            const applies = new Set(settings.fields[method] || []);
            dependent.forEach(function(name) {
                document.querySelectorAll('.form-row.field-' + name).forEach(function(row) {
                    const hasError = row.classList.contains('errors') || row.querySelector('.errorlist') !== null;
                    row.style.display = applies.has(name) || hasError ? '' : 'none';
                });
            });
        }

        if (select) {
            select.addEventListener('change', apply);
        }
        apply();
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
})();
